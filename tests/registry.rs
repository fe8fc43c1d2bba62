//! Registry pulls against a real registry (Debian's docker-registry) that each
//! test starts on 127.0.0.1: by tag and by digest, an index of several
//! platforms, layers already in the store, mirrors from registries.conf,
//! TLS with a private CA and htpasswd auth, pull policies in `run`, and
//! every error a pull can meet (each exits 125 and leaves nothing behind).

mod common;

use common::oci::{self, BuiltLayer, Compression, build_layer, dir, file};
use common::registry::Registry;
use common::{TestEnv, free_port, stderr_of, stdout_of};

fn layer(path: &str, text: &str) -> BuiltLayer {
    build_layer(&[dir("etc"), file(path, text)], Compression::Gzip)
}

fn config_for(layers: &[BuiltLayer]) -> Vec<u8> {
    let ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    oci::config_json(&ids, None, Some(&["sh"]))
}

/// Pushes a small two-layer image; returns its manifest digest.
fn push_small(reg: &Registry, repo: &str, tag: &str, marker: &str) -> String {
    let layers = vec![layer("etc/base", "base\n"), layer("etc/marker", marker)];
    let config = config_for(&layers);
    reg.push_image(repo, tag, &layers, &config).0
}

fn image_ids(env: &TestEnv) -> Vec<(String, String)> {
    let json = env.ok(["images", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Name"].as_str().unwrap().to_string(),
                i["Id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn pulls_by_tag_and_by_digest_and_skips_layers_it_has() {
    let reg = Registry::start();
    let env = TestEnv::new();
    let digest = push_small(&reg, "team/app", "1.0", "one\n");

    let name = format!("{}/team/app:1.0", reg.addr);
    let out = env.ok(["pull", &name]);
    assert!(out.contains(&format!("Pulled: {name}")), "{out}");
    assert!(out.contains(&digest), "prints the manifest digest: {out}");
    assert_eq!(env.image_names(), vec![name.clone()]);
    assert_eq!(env.layer_dirs().len(), 2);

    // Again: nothing changed, nothing is fetched.
    let again = env.run(["pull", &name]);
    assert!(again.status.success());
    assert!(
        stderr_of(&again).contains("up to date"),
        "{}",
        stderr_of(&again)
    );

    let by_digest = format!("{}/team/app@{digest}", reg.addr);
    let out = env.ok(["pull", &by_digest]);
    assert!(out.contains(&format!("Pulled: {by_digest}")), "{out}");
    assert_eq!(env.layer_dirs().len(), 2, "the same layers, shared");

    // A second image on the same base layer: the base is not fetched again.
    // Its blob is deleted from the registry, so a GET of it would fail.
    let base = layer("etc/base", "base\n");
    std::fs::remove_file(reg.blob_data(&base.digest)).unwrap();
    push_small(&reg, "team/app", "2.0", "two\n");
    // (push_small uploads the base again; delete it once more.)
    std::fs::remove_file(reg.blob_data(&base.digest)).unwrap();
    let two = format!("{}/team/app:2.0", reg.addr);
    env.ok(["pull", "--quiet", &two]);
    assert_eq!(env.layer_dirs().len(), 3);
    let names = env.image_names();
    assert!(
        names.contains(&two) && names.contains(&by_digest),
        "{names:?}"
    );
}

#[test]
fn a_multi_platform_index_resolves_to_this_machine() {
    let reg = Registry::start();
    let env = TestEnv::new();
    let mut manifests = Vec::new();
    let mut host_config = String::new();
    for arch in [oci::host_arch(), "s390x", "riscv64"] {
        let layers = vec![layer("etc/arch", arch)];
        let ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let mut config: serde_json::Value =
            serde_json::from_slice(&oci::config_json(&ids, None, Some(&["sh"]))).unwrap();
        config["architecture"] = arch.into();
        let config = serde_json::to_vec(&config).unwrap();
        if arch == oci::host_arch() {
            host_config = oci::sha256(&config);
        }
        let (digest, bytes) = reg.push_image("multi", &format!("only-{arch}"), &layers, &config);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": bytes.len(),
            "platform": { "os": "linux", "architecture": arch },
        }));
    }
    // The host's entry is not first.
    manifests.rotate_left(1);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    reg.push_manifest(
        "multi",
        "latest",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    env.ok(["pull", &format!("{}/multi", reg.addr)]);
    let ids = image_ids(&env);
    assert_eq!(
        ids,
        vec![(
            format!("{}/multi:latest", reg.addr),
            host_config.trim_start_matches("sha256:").to_string()
        )]
    );

    // An index without this machine's platform says which it has.
    let other = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests.iter().filter(|m| m["platform"]["architecture"] != oci::host_arch()).collect::<Vec<_>>(),
    }))
    .unwrap();
    reg.push_manifest(
        "multi",
        "foreign",
        "application/vnd.oci.image.index.v1+json",
        &other,
    );
    let err = env.fails(["pull", &format!("{}/multi:foreign", reg.addr)]);
    assert!(
        err.contains("linux/s390x") && err.contains(oci::host_arch()),
        "{err}"
    );
}

fn busybox_image(env: &TestEnv, marker: &str) -> (Vec<BuiltLayer>, Vec<u8>) {
    let rootfs = oci::busybox_rootfs(&env.work().join(format!("bb-{marker}")));
    std::fs::write(rootfs.join("etc/version"), marker).unwrap();
    let layers = vec![oci::dir_layer(&rootfs, Compression::Gzip)];
    let ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = oci::config_with(&ids, serde_json::json!({ "Cmd": ["sh"] }));
    (layers, config)
}

fn pod_yaml(image: &str, policy: Option<&str>) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: {image}\n{}    \
         command: [sh, -c, 'echo version-$(cat /etc/version)']\n",
        policy
            .map(|p| format!("    imagePullPolicy: {p}\n"))
            .unwrap_or_default()
    )
}

#[test]
fn a_pod_whose_image_is_only_in_the_registry_runs_and_policies_apply() {
    let reg = Registry::start();
    let env = TestEnv::new();
    let (layers, config) = busybox_image(&env, "one");
    reg.push_image("tools/bb", "1", &layers, &config);
    let image = format!("{}/tools/bb:1", reg.addr);

    // `--pull never` with the image missing: refused before anything runs.
    let out = env.run_pod(&pod_yaml(&image, None), &["--pull", "never"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr_of(&out);
    assert!(
        err.contains(&image) && err.contains("Never") && err.contains("minipod pull"),
        "{err}"
    );
    assert!(env.pod_state().is_empty() && env.image_names().is_empty());

    // Default policy for a tag other than latest: IfNotPresent, so pulled.
    let out = env.run_pod(&pod_yaml(&image, None), &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("version-one"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(env.image_names(), vec![image.clone()]);

    // The tag moves on in the registry.
    let (layers, config) = busybox_image(&env, "two");
    reg.push_image("tools/bb", "1", &layers, &config);
    // IfNotPresent keeps the local one; --pull always fetches the new one;
    // imagePullPolicy: Always does too.
    let out = env.run_pod(&pod_yaml(&image, None), &[]);
    assert!(
        stdout_of(&out).contains("version-one"),
        "{}",
        stdout_of(&out)
    );
    let out = env.run_pod(&pod_yaml(&image, None), &["--pull", "always"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("version-two"),
        "{}",
        stdout_of(&out)
    );
    let (layers, config) = busybox_image(&env, "three");
    reg.push_image("tools/bb", "1", &layers, &config);
    let out = env.run_pod(&pod_yaml(&image, Some("Always")), &[]);
    assert!(
        stdout_of(&out).contains("version-three"),
        "{}",
        stdout_of(&out)
    );
    // --pull never with the image present uses it.
    let out = env.run_pod(&pod_yaml(&image, Some("Always")), &["--pull", "never"]);
    assert!(
        stdout_of(&out).contains("version-three"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn registries_conf_points_docker_io_at_a_mirror() {
    let reg = Registry::start();
    let env = TestEnv::new();
    push_small(&reg, "library/mirrored", "1", "mirror\n");
    let conf = env.work().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"docker.io\"\n\
             location = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.addr
        ),
    )
    .unwrap();
    env.give_to_user(&conf);
    let out = env
        .command(["pull", "mirrored:1"])
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("Pulled: docker.io/library/mirrored:1"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(env.image_names(), vec!["docker.io/library/mirrored:1"]);
}

#[test]
fn unknown_images_and_tags_and_unreachable_registries_fail_clearly() {
    let reg = Registry::start();
    let env = TestEnv::new();
    push_small(&reg, "known", "1", "x\n");

    let err = env.fails(["pull", &format!("{}/unknown:1", reg.addr)]);
    assert!(
        err.contains(&format!("{}/unknown:1", reg.addr))
            && err.contains("no repository")
            && err.contains("check the image name"),
        "{err}"
    );
    let err = env.fails(["pull", &format!("{}/known:2", reg.addr)]);
    assert!(
        err.contains(&format!("{}/known:2", reg.addr))
            && err.contains("no tag \"2\"")
            && err.contains("it has 1"),
        "{err}"
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let err = env.fails(["pull", &format!("{}/known@{missing}", reg.addr)]);
    assert!(
        err.contains(&missing) && err.contains("check the digest"),
        "{err}"
    );

    // A port nobody listens on.
    let port = free_port();
    let err = env.fails(["pull", &format!("127.0.0.1:{port}/known:1")]);
    assert!(
        err.contains(&format!("127.0.0.1:{port}/known:1")) && err.contains("cannot reach"),
        "{err}"
    );
    // `--pull never`-free run with an unreachable registry: nothing created.
    let out = env.run_pod(&pod_yaml(&format!("127.0.0.1:{port}/x:1"), None), &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr_of(&out).contains("cannot reach"),
        "{}",
        stderr_of(&out)
    );
    assert!(env.pod_state().is_empty());
    common::assert_store_empty(&env);
}

#[test]
fn damaged_blobs_in_the_registry_fail_and_leave_nothing() {
    let reg = Registry::start();
    let env = TestEnv::new();
    let layers = vec![
        layer("etc/good", "fine\n"),
        build_layer(
            &[dir("data"), file("data/big", &"payload ".repeat(50_000))],
            Compression::Gzip,
        ),
    ];
    let config = config_for(&layers);
    reg.push_image("damaged", "1", &layers, &config);
    // Flip a byte in the middle of the second layer, as stored.
    let path = reg.blob_data(&layers[1].digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let err = env.fails(["pull", &format!("{}/damaged:1", reg.addr)]);
    assert!(
        err.contains(&format!("{}/damaged:1", reg.addr)) && err.contains(&layers[1].digest),
        "names the image and the blob: {err}"
    );
    assert!(
        err.contains("does not match its digest") || err.contains("corrupt"),
        "{err}"
    );
    common::assert_store_empty(&env);

    // A damaged config.
    let cfg_path = reg.blob_data(&oci::sha256(&config));
    let mut cfg = std::fs::read(&cfg_path).unwrap();
    cfg[0] = b' ';
    std::fs::write(&cfg_path, &cfg).unwrap();
    let err = env.fails(["pull", &format!("{}/damaged:1", reg.addr)]);
    assert!(
        err.contains("config") && err.contains("does not match its digest"),
        "{err}"
    );
    common::assert_store_empty(&env);
}

#[test]
fn tls_with_a_private_ca_and_basic_auth() {
    let reg = Registry::start_tls_auth("alice", "s3cret");
    let env = TestEnv::new();
    push_small(&reg, "private/app", "1", "secret\n");
    let image = format!("{}/private/app:1", reg.addr);
    let certs = env.work().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(reg.ca.as_ref().unwrap(), certs.join("ca.crt")).unwrap();
    env.give_to_user(&certs);
    let certs = certs.to_str().unwrap().to_string();

    // Without the CA: the certificate is not trusted.
    let err = env.fails(["pull", &image]);
    assert!(
        err.contains(&image) && err.contains("TLS") && err.contains("--cert-dir"),
        "{err}"
    );
    // With the CA but no credentials.
    let err = env.fails(["pull", "--cert-dir", &certs, &image]);
    assert!(
        err.contains(&image) && err.contains("requires authentication") && err.contains("login"),
        "{err}"
    );
    // Wrong credentials in an --authfile.
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let wrong = env.work().join("wrong.json");
    std::fs::write(
        &wrong,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr,
            b64("alice:nope")
        ),
    )
    .unwrap();
    env.give_to_user(&wrong);
    let err = env.fails([
        "pull",
        "--cert-dir",
        &certs,
        "--authfile",
        wrong.to_str().unwrap(),
        &image,
    ]);
    assert!(
        err.contains(&image) && err.contains("refused the credentials") && err.contains("alice"),
        "{err}"
    );
    common::assert_store_empty(&env);

    // The right ones where podman login puts them.
    let xdg = env.work().join("xdg");
    std::fs::create_dir_all(xdg.join("containers")).unwrap();
    std::fs::write(
        xdg.join("containers/auth.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr,
            b64("alice:s3cret")
        ),
    )
    .unwrap();
    env.give_to_user(&xdg);
    let out = env
        .command(["pull", "--cert-dir", &certs, &image])
        .env("XDG_RUNTIME_DIR", &xdg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains(&format!("Pulled: {image}")));

    // --tls-verify=false skips the certificate check (auth still needed).
    let out = env
        .command(["pull", "--tls-verify=false", &image])
        .env("XDG_RUNTIME_DIR", &xdg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}
