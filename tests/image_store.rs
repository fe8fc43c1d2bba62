//! The image store, driven through the real binary as the unprivileged test
//! user: every source format, whiteouts through real overlayfs, ownership
//! through the subuid range, every escape, every corruption.

mod common;

use std::os::unix::fs::MetadataExt;

use common::oci::{
    self, Compression, Entry, build_layer, dir, file, hardlink, owned_file, symlink, write_layout,
};
use common::{TestEnv, stderr_of, stdout_of};

fn layout_arg(l: &oci::Layout) -> String {
    format!("oci:{}", l.dir.display())
}

#[test]
fn each_source_format_loads() {
    let env = TestEnv::new();
    let w = env.work();
    let base = vec![dir("etc"), file("etc/os-release", "ID=test\n")];
    let top = vec![dir("app"), file("app/run.sh", "echo hi\n")];

    for (i, c) in [Compression::Gzip, Compression::Zstd, Compression::None]
        .into_iter()
        .enumerate()
    {
        let l = write_layout(
            &w.join(format!("oci-{i}")),
            vec![build_layer(&base, c), build_layer(&top, c)],
            Some("v1"),
            None,
        );
        env.give_to_user(&l.dir);
        let out = env.ok([
            "load",
            "--name",
            &format!("test/oci-{i}:v1"),
            &layout_arg(&l),
        ]);
        assert!(out.contains(&format!("docker.io/test/oci-{i}:v1")), "{out}");
    }

    // oci-archive, tag from the layout's ref name.
    let l = write_layout(
        &w.join("arch"),
        vec![build_layer(&base, Compression::Gzip)],
        Some("quay.io/x/archived:2.0"),
        None,
    );
    let archive = w.join("image.tar");
    oci::tar_dir(&l.dir, &archive);
    env.give_to_user(&w);
    env.ok(["load", &format!("oci-archive:{}", archive.display())]);

    // A bare tag as ref name names the image after the layout.
    env.ok(["load", &format!("oci:{}:v1", w.join("oci-0").display())]);

    // docker save, legacy layout.
    let docker = w.join("docker.tar");
    oci::write_docker_archive(&docker, &[base.clone(), top.clone()], "legacy/app:3");
    env.give_to_user(&docker);
    env.ok(["load", &format!("docker-archive:{}", docker.display())]);

    // import of a directory and of a tar.
    let rootfs = oci::busybox_rootfs(&w.join("rootfs"));
    env.give_to_user(&rootfs);
    env.ok(["import", rootfs.to_str().unwrap(), "busybox"]);
    let tarball = w.join("rootfs.tar.gz");
    std::fs::write(&tarball, Compression::Gzip.compress(&oci::layer_tar(&top))).unwrap();
    env.give_to_user(&tarball);
    env.ok(["import", tarball.to_str().unwrap(), "localhost/fromtar:1"]);

    let names = env.image_names();
    for want in [
        "docker.io/test/oci-0:v1",
        "docker.io/test/oci-1:v1",
        "docker.io/test/oci-2:v1",
        "quay.io/x/archived:2.0",
        "localhost/oci-0:v1",
        "docker.io/legacy/app:3",
        "docker.io/library/busybox:latest",
        "localhost/fromtar:1",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "{want} missing from {names:?}"
        );
    }
    // The base layer is the same tar in every format: unpacked once.
    let base_hex = oci::sha256(&oci::layer_tar(&base));
    let n = env
        .layer_dirs()
        .iter()
        .filter(|d| base_hex.ends_with(d.as_str()))
        .count();
    assert_eq!(n, 1);

    let table = env.ok(["images"]);
    assert!(
        table.contains("REPOSITORY") && table.contains("docker.io/legacy/app"),
        "{table}"
    );
}

#[test]
fn index_with_several_platforms_picks_the_host() {
    let env = TestEnv::new();
    let w = env.work();
    let l = write_layout(
        &w.join("multi"),
        vec![build_layer(&[file("arch", "host")], Compression::Gzip)],
        None,
        None,
    );
    // Add a second manifest for another platform and mark the first as ours.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.dir.join("index.json")).unwrap()).unwrap();
    let mut ours = index["manifests"][0].clone();
    ours["platform"] = serde_json::json!({"os": "linux", "architecture": oci::host_arch()});
    let mut other = ours.clone();
    other["platform"] = serde_json::json!({"os": "linux", "architecture": "s390x"});
    other["digest"] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    let nested = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [other, ours]});
    let nested_bytes = serde_json::to_vec(&nested).unwrap();
    let nested_digest = oci::sha256(&nested_bytes);
    std::fs::write(l.blob_path(&nested_digest), &nested_bytes).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": nested_digest, "size": nested_bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:1"}
    }]});
    std::fs::write(l.dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    env.give_to_user(&w);
    env.ok(["load", &layout_arg(&l)]);
    assert_eq!(env.image_names(), vec!["example.com/multi:1".to_string()]);
}

#[test]
fn whiteouts_and_opaque_dirs_merge_in_overlayfs() {
    let env = TestEnv::new();
    let w = env.work();
    let lower = vec![
        dir("keep"),
        file("keep/a", "a"),
        file("gone", "x"),
        dir("opaque"),
        file("opaque/old", "old"),
        dir("dir"),
        file("dir/removed", "r"),
        file("dir/kept", "k"),
    ];
    let upper = vec![
        file(".wh.gone", ""),
        dir("opaque"),
        file("opaque/.wh..wh..opq", ""),
        file("opaque/new", "new"),
        file("dir/.wh.removed", ""),
    ];
    let l = write_layout(
        &w.join("wh"),
        vec![
            build_layer(&lower, Compression::Gzip),
            build_layer(&upper, Compression::Gzip),
        ],
        None,
        None,
    );
    env.give_to_user(&w);
    env.ok(["load", "--name", "wh", &layout_arg(&l)]);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let lowerdir = format!(
        "{}:{}",
        env.root
            .join("layers")
            .join(hex(&l.layers[1].diff_id))
            .join("diff")
            .display(),
        env.root
            .join("layers")
            .join(hex(&l.layers[0].diff_id))
            .join("diff")
            .display()
    );
    let mnt = env.work().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    env.give_to_user(&mnt);
    let out = env.in_userns(&format!(
        "mount -t overlay overlay -o lowerdir={lowerdir},userxattr {mnt} && cd {mnt} && find . | sort",
        mnt = mnt.display()
    ));
    assert!(
        out.status.success(),
        "overlay mount failed: {}",
        stderr_of(&out)
    );
    let tree = stdout_of(&out);
    let entries: Vec<&str> = tree.lines().collect();
    assert_eq!(
        entries,
        vec![
            ".",
            "./dir",
            "./dir/kept",
            "./keep",
            "./keep/a",
            "./opaque",
            "./opaque/new"
        ],
        "merged tree"
    );
}

#[test]
fn image_owners_map_through_the_subuid_range() {
    let Some(start) = common::subuid_start() else {
        eprintln!("skipped: the test user has no /etc/subuid range");
        return;
    };
    let env = TestEnv::new();
    let w = env.work();
    let entries = vec![
        dir("home"),
        owned_file("home/alice", "mine", 1000, 1000),
        file("rootfile", "r"),
    ];
    let l = write_layout(
        &w.join("own"),
        vec![build_layer(&entries, Compression::Gzip)],
        None,
        None,
    );
    env.give_to_user(&w);
    env.ok(["load", "--name", "own", &layout_arg(&l)]);
    let diff = env
        .root
        .join("layers")
        .join(l.layers[0].diff_id.trim_start_matches("sha256:"))
        .join("diff");
    let alice = std::fs::metadata(diff.join("home/alice")).unwrap();
    assert_eq!(
        alice.uid(),
        start + 999,
        "uid 1000 in the image is subuid start + 999 on disk"
    );
    assert_eq!(alice.gid(), start + 999);
    assert_eq!(alice.mode() & 0o7777, 0o640);
    let root = std::fs::metadata(diff.join("rootfile")).unwrap();
    assert_eq!(
        root.uid(),
        common::test_user().uid,
        "uid 0 in the image is the user on disk"
    );
    // And inside the namespace it is uid 1000 again.
    let out = env.in_userns(&format!(
        "stat -c %u:%g {}",
        diff.join("home/alice").display()
    ));
    assert_eq!(stdout_of(&out).trim(), "1000:1000", "{}", stderr_of(&out));
}

/// Each malicious layer is refused, names the entry, and touches nothing.
#[test]
fn escapes_are_refused_and_the_host_is_untouched() {
    let env = TestEnv::new();
    let w = env.work();
    let victim = w.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("passwd"), "precious").unwrap();
    env.give_to_user(&w);
    let v = victim.display().to_string();
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        (
            "dotdot",
            vec![Entry::RawFile {
                name: b"../../escape".to_vec(),
                data: b"x".to_vec(),
            }],
        ),
        (
            "inner-dotdot",
            vec![
                dir("a"),
                Entry::RawFile {
                    name: b"a/../../escape".to_vec(),
                    data: b"x".to_vec(),
                },
            ],
        ),
        (
            "absolute",
            vec![Entry::RawFile {
                name: format!("{v}/abs").into_bytes(),
                data: b"x".to_vec(),
            }],
        ),
        (
            "symlink-abs",
            vec![symlink("evil", &v), file("evil/new", "x")],
        ),
        (
            "symlink-rel",
            vec![
                symlink("evil", "../../../../../../../../.."),
                Entry::RawFile {
                    name: format!("evil{v}/new").into_bytes(),
                    data: b"x".to_vec(),
                },
            ],
        ),
        (
            "hardlink-abs",
            vec![Entry::RawHardlink {
                name: b"link".to_vec(),
                target: format!("{v}/passwd").into_bytes(),
            }],
        ),
        (
            "hardlink-dotdot",
            vec![Entry::RawHardlink {
                name: b"link".to_vec(),
                target: b"../../../../../../../../etc/passwd".to_vec(),
            }],
        ),
        (
            "hardlink-via-symlink",
            vec![symlink("evil", &v), hardlink("link", "evil/passwd")],
        ),
        ("whiteout-dot", vec![dir("d"), file("d/.wh..", "")]),
        ("whiteout-dotdot", vec![dir("d"), file("d/.wh...", "")]),
    ];
    for (name, entries) in cases {
        let l = write_layout(
            &w.join(name),
            vec![build_layer(&entries, Compression::Gzip)],
            None,
            None,
        );
        env.give_to_user(&l.dir);
        let err = env.fails(["load", "--name", name, &layout_arg(&l)]);
        assert!(
            err.contains(&l.layers[0].digest),
            "{name}: the error names the layer: {err}"
        );
        assert!(
            err.contains(&format!("image docker.io/library/{name}:latest")),
            "{name}: names the image: {err}"
        );
        assert!(err.contains("entry"), "{name}: names the entry: {err}");
        common::assert_store_empty(&env);
    }
    let left: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "nothing appeared beside the victim: {left:?}"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("passwd")).unwrap(),
        "precious"
    );
    assert!(!w.join("escape").exists() && !env.dir.join("escape").exists());
    assert_eq!(
        std::fs::metadata(victim.join("passwd")).unwrap().nlink(),
        1,
        "no hardlink to the victim"
    );
}

/// An earlier layer's symlink cannot redirect a later layer: each layer is
/// unpacked into its own directory.
#[test]
fn symlink_from_an_earlier_layer_cannot_redirect() {
    let env = TestEnv::new();
    let w = env.work();
    let victim = w.join("victim2");
    std::fs::create_dir_all(&victim).unwrap();
    env.give_to_user(&w);
    let l1 = build_layer(
        &[symlink("evil", victim.to_str().unwrap())],
        Compression::Gzip,
    );
    let l2 = build_layer(&[dir("evil"), file("evil/planted", "x")], Compression::Gzip);
    let l = write_layout(&w.join("two"), vec![l1, l2], None, None);
    env.give_to_user(&l.dir);
    env.ok(["load", "--name", "two", &layout_arg(&l)]);
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
}

#[test]
fn damaged_images_fail_clearly_and_leave_nothing() {
    let env = TestEnv::new();
    let w = env.work();
    let good = || {
        vec![build_layer(
            &[dir("etc"), file("etc/x", &"data ".repeat(5000))],
            Compression::Gzip,
        )]
    };

    // Digest mismatch: a blob's bytes changed (size kept).
    let l = write_layout(&w.join("mismatch"), good(), None, None);
    let mut blob = l.layers[0].blob.clone();
    let n = blob.len();
    blob[n - 9] ^= 0xff; // inside the gzip trailer's CRC: decompresses, but hashes wrong
    std::fs::write(l.blob_path(&l.layers[0].digest), &blob).unwrap();
    env.give_to_user(&w);
    let err = env.fails(["load", "--name", "bad", &layout_arg(&l)]);
    assert!(err.contains(&l.layers[0].digest), "names the blob: {err}");
    common::assert_store_empty(&env);

    // Corrupt gzip.
    let l = write_layout(&w.join("corrupt"), good(), None, None);
    let mut blob = l.layers[0].blob.clone();
    for b in blob.iter_mut().skip(20).take(40) {
        *b = 0x5a;
    }
    std::fs::write(l.blob_path(&l.layers[0].digest), &blob).unwrap();
    env.give_to_user(&w);
    let err = env.fails(["load", "--name", "bad", &layout_arg(&l)]);
    assert!(
        err.contains(&l.layers[0].digest)
            && (err.contains("corrupt") || err.contains("does not match")),
        "{err}"
    );
    common::assert_store_empty(&env);

    // Truncated archive.
    let l = write_layout(&w.join("trunc"), good(), Some("x/y:1"), None);
    let archive = w.join("trunc.tar");
    oci::tar_dir(&l.dir, &archive);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    env.give_to_user(&w);
    let err = env.fails(["load", &format!("oci-archive:{}", archive.display())]);
    assert!(err.contains("trunc.tar"), "names the file: {err}");
    common::assert_store_empty(&env);

    // Missing blob.
    let l = write_layout(&w.join("missing"), good(), None, None);
    std::fs::remove_file(l.blob_path(&l.layers[0].digest)).unwrap();
    let err = env.fails(["load", "--name", "bad", &layout_arg(&l)]);
    assert!(
        err.contains(&l.layers[0].digest) && err.contains("missing"),
        "{err}"
    );
    common::assert_store_empty(&env);

    // Unknown media type.
    let mut layer = build_layer(&[file("a", "b")], Compression::Gzip);
    layer.media_type = "application/vnd.example.layer.v1.tar+lz4".into();
    let l = write_layout(&w.join("mediatype"), vec![layer], None, None);
    env.give_to_user(&w);
    let err = env.fails(["load", "--name", "bad", &layout_arg(&l)]);
    assert!(
        err.contains("application/vnd.example.layer.v1.tar+lz4"),
        "{err}"
    );
    common::assert_store_empty(&env);

    // Missing index.json.
    let l = write_layout(&w.join("noindex"), good(), None, None);
    std::fs::remove_file(l.dir.join("index.json")).unwrap();
    let err = env.fails(["load", "--name", "bad", &layout_arg(&l)]);
    assert!(err.contains("index.json"), "{err}");
    common::assert_store_empty(&env);

    // Wrong diff-id in the config.
    let layers = good();
    let cfg = oci::config_json(&[format!("sha256:{}", "1".repeat(64))], None, None);
    let l = write_layout(&w.join("diffid"), layers, None, Some(cfg));
    env.give_to_user(&w);
    let err = env.fails(["load", "--name", "bad", &layout_arg(&l)]);
    assert!(err.contains("uncompresses to"), "{err}");
    common::assert_store_empty(&env);

    // No such source, unknown transport.
    let err = env.fails(["load", "oci:/nonexistent/dir"]);
    assert!(err.contains("/nonexistent/dir"), "{err}");
    let err = env.fails(["load", "tarball:/x"]);
    assert!(err.contains("tarball"), "{err}");
}

#[test]
fn device_nodes_are_skipped_with_one_warning() {
    let env = TestEnv::new();
    let w = env.work();
    let entries = vec![
        dir("dev"),
        Entry::CharDevice {
            path: "dev/null".into(),
            major: 1,
            minor: 3,
        },
        Entry::CharDevice {
            path: "dev/zero".into(),
            major: 1,
            minor: 5,
        },
        file("ok", "fine"),
    ];
    let l = write_layout(
        &w.join("dev"),
        vec![build_layer(&entries, Compression::Gzip)],
        None,
        None,
    );
    env.give_to_user(&w);
    let out = env.run(["load", "--name", "dev", &layout_arg(&l)]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert_eq!(err.matches("device node").count(), 1, "one warning: {err}");
    assert!(err.contains("2 device"), "{err}");
}

#[test]
fn concurrent_loads_sharing_a_layer_both_succeed() {
    let env = TestEnv::new();
    let w = env.work();
    let shared: Vec<Entry> = (0..300)
        .map(|i| file(&format!("f{i}"), &"x".repeat(3000)))
        .collect();
    let shared = build_layer(&shared, Compression::Gzip);
    let shared2 = BuiltClone::of(&shared);
    let a = write_layout(
        &w.join("a"),
        vec![shared, build_layer(&[file("a", "a")], Compression::Gzip)],
        None,
        None,
    );
    let b = write_layout(
        &w.join("b"),
        vec![shared2, build_layer(&[file("b", "b")], Compression::Gzip)],
        None,
        None,
    );
    env.give_to_user(&w);
    let mut ca = env.command(["load", "--name", "a", &layout_arg(&a)]);
    let mut cb = env.command(["load", "--name", "b", &layout_arg(&b)]);
    let (pa, pb) = (ca.spawn().unwrap(), cb.spawn().unwrap());
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    assert!(oa.status.success(), "{}", stderr_of(&oa));
    assert!(ob.status.success(), "{}", stderr_of(&ob));
    assert_eq!(
        env.layer_dirs().len(),
        3,
        "the shared layer is stored once: {:?}",
        env.layer_dirs()
    );
}

/// `BuiltLayer` is not Clone on purpose (blobs are big); tests copy one here.
struct BuiltClone;
impl BuiltClone {
    fn of(l: &oci::BuiltLayer) -> oci::BuiltLayer {
        oci::BuiltLayer {
            blob: l.blob.clone(),
            digest: l.digest.clone(),
            diff_id: l.diff_id.clone(),
            media_type: l.media_type.clone(),
        }
    }
}

#[test]
fn a_killed_load_leaves_nothing_visible() {
    let env = TestEnv::new();
    let w = env.work();
    // Big enough that the load is still running when it is killed.
    let big: Vec<Entry> = (0..4000)
        .map(|i| file(&format!("d{}/f{i}", i % 50), &"y".repeat(2000)))
        .collect();
    let mut all = (0..50).map(|i| dir(&format!("d{i}"))).collect::<Vec<_>>();
    all.extend(big);
    let l = write_layout(
        &w.join("big"),
        vec![build_layer(&all, Compression::Gzip)],
        None,
        None,
    );
    env.give_to_user(&w);
    for delay_ms in [30u64, 80] {
        let mut child = env
            .command(["load", "--name", "big", &layout_arg(&l)])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever happened, no image name points at a partial layer and no
        // complete-looking layer dir is partial.
        let names = env.image_names();
        for d in env.layer_dirs() {
            if !d.starts_with(".tmp-") {
                assert!(
                    env.root.join("layers").join(&d).join("meta.json").exists(),
                    "{d} is whole"
                );
            }
        }
        if names.is_empty() {
            continue;
        }
        assert_eq!(names, vec!["docker.io/library/big:latest".to_string()]);
    }
    // The next load cleans up what the killed ones left and succeeds.
    env.ok(["load", "--name", "big", &layout_arg(&l)]);
    assert!(
        env.layer_dirs().iter().all(|d| !d.starts_with(".tmp-")),
        "{:?}",
        env.layer_dirs()
    );
}

#[test]
fn rmi_removes_only_what_no_other_image_uses() {
    let env = TestEnv::new();
    let w = env.work();
    let base = vec![file("base", "b")];
    let a = write_layout(
        &w.join("a"),
        vec![
            build_layer(&base, Compression::Gzip),
            build_layer(&[file("a", "a")], Compression::Gzip),
        ],
        None,
        None,
    );
    let b = write_layout(
        &w.join("b"),
        vec![
            build_layer(&base, Compression::Gzip),
            build_layer(&[file("b", "b")], Compression::Gzip),
        ],
        None,
        None,
    );
    env.give_to_user(&w);
    env.ok(["load", "--name", "a", &layout_arg(&a)]);
    env.ok(["load", "--name", "b", &layout_arg(&b)]);
    assert_eq!(env.layer_dirs().len(), 3);
    let out = env.ok(["rmi", "a"]);
    assert!(out.contains("docker.io/library/a:latest"), "{out}");
    assert_eq!(env.layer_dirs().len(), 2, "the shared base stays");
    assert_eq!(
        env.image_names(),
        vec!["docker.io/library/b:latest".to_string()]
    );
    let blobs = std::fs::read_dir(env.root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 2, "config and manifest of b only");
    let err = env.fails(["rmi", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    // By ID prefix.
    let id = b.config_digest.trim_start_matches("sha256:")[..12].to_string();
    env.ok(["rmi", &id]);
    assert!(env.image_names().is_empty());
    assert!(env.layer_dirs().is_empty());
}
