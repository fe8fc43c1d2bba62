//! Builds test images as OCI image layouts (and archives of them, and docker
//! archives) from entries the test describes, or from the host's
//! busybox-static. Nothing is downloaded.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One tar entry of a test layer.
#[derive(Clone)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// A raw name written into the header as is (for escape attempts).
    RawFile {
        name: Vec<u8>,
        data: Vec<u8>,
    },
    RawHardlink {
        name: Vec<u8>,
        target: Vec<u8>,
    },
    CharDevice {
        path: String,
        major: u32,
        minor: u32,
    },
}

pub fn dir(path: &str) -> Entry {
    Entry::Dir {
        path: path.into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
    }
}
pub fn file(path: &str, data: &str) -> Entry {
    Entry::File {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}
pub fn owned_file(path: &str, data: &str, uid: u64, gid: u64) -> Entry {
    Entry::File {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode: 0o640,
        uid,
        gid,
    }
}
pub fn symlink(path: &str, target: &str) -> Entry {
    Entry::Symlink {
        path: path.into(),
        target: target.into(),
    }
}
pub fn hardlink(path: &str, target: &str) -> Entry {
    Entry::Hardlink {
        path: path.into(),
        target: target.into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(tar).unwrap();
                enc.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(tar, 1).unwrap(),
        }
    }
}

/// The uncompressed tar of `entries`.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            Entry::File {
                path,
                data,
                mode,
                uid,
                gid,
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..]).unwrap();
            }
            Entry::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Entry::Hardlink { path, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Entry::RawFile { name, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                raw_name(&mut h, name);
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
            }
            Entry::RawHardlink { name, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                raw_name(&mut h, name);
                let gnu = h.as_gnu_mut().unwrap();
                gnu.linkname = [0; 100];
                gnu.linkname[..target.len()].copy_from_slice(target);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Entry::CharDevice { path, major, minor } => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_size(0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn raw_name(h: &mut tar::Header, name: &[u8]) {
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name);
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A layer as stored in a layout: its blob and what describes it.
pub struct BuiltLayer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
}

pub fn build_layer(entries: &[Entry], c: Compression) -> BuiltLayer {
    let tar = layer_tar(entries);
    let blob = c.compress(&tar);
    BuiltLayer {
        digest: sha256(&blob),
        diff_id: sha256(&tar),
        media_type: c.media_type().into(),
        blob,
    }
}

/// An OCI image layout on disk; tests mutate the files to make bad ones.
pub struct Layout {
    pub dir: PathBuf,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<BuiltLayer>,
}

impl Layout {
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

/// Image config with the given diff-ids and process defaults.
pub fn config_json(
    diff_ids: &[String],
    entrypoint: Option<&[&str]>,
    cmd: Option<&[&str]>,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": host_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": entrypoint,
            "Cmd": cmd,
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap()
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let p = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    digest
}

/// An OCI image manifest for a config blob and layers.
pub fn manifest_json(config_digest: &str, config_size: usize, layers: &[BuiltLayer]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Writes an OCI layout at `dir` holding one image of `layers`, tagged `tag`.
pub fn write_layout(
    dir: &Path,
    layers: Vec<BuiltLayer>,
    tag: Option<&str>,
    config: Option<Vec<u8>>,
) -> Layout {
    std::fs::create_dir_all(dir).unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = config.unwrap_or_else(|| config_json(&diff_ids, None, Some(&["sh"])));
    let config_digest = write_blob(dir, &config);
    for l in &layers {
        write_blob(dir, &l.blob);
    }
    let manifest = manifest_json(&config_digest, config.len(), &layers);
    let manifest_digest = write_blob(dir, &manifest);
    let mut desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": manifest.len(),
    });
    if let Some(t) = tag {
        desc["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": t });
    }
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [desc] });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Layout {
        dir: dir.to_path_buf(),
        manifest_digest,
        config_digest,
        layers,
    }
}

/// Tars up a directory (an OCI layout) into an archive file.
pub fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

/// A `docker save` archive in the legacy layout: `<id>/layer.tar`,
/// `<config hex>.json`, `manifest.json`, `repositories`.
pub fn write_docker_archive(out: &Path, layers: &[Vec<Entry>], repo_tag: &str) {
    let tars: Vec<Vec<u8>> = layers.iter().map(|e| layer_tar(e)).collect();
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t)).collect();
    let config = config_json(&diff_ids, None, Some(&["sh"]));
    let config_hex = sha256(&config).trim_start_matches("sha256:").to_string();
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut layer_paths = Vec::new();
    for (i, t) in tars.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        add(&format!("{id}/layer.tar"), t);
        add(&format!("{id}/VERSION"), b"1.0");
        layer_paths.push(format!("{id}/layer.tar"));
    }
    add(&format!("{config_hex}.json"), &config);
    let manifest = serde_json::json!([{ "Config": format!("{config_hex}.json"), "RepoTags": [repo_tag], "Layers": layer_paths }]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    add("repositories", b"{}");
    b.into_inner().unwrap().flush().unwrap();
}

/// A root filesystem directory with the host's busybox-static and its applet
/// links: the base of every runnable test image.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed (scripts/setup-host)");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n").unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nalice:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    dir.to_path_buf()
}

/// A layer holding a directory tree (owned by root in the image).
pub fn dir_layer(dir: &Path, c: Compression) -> BuiltLayer {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", dir).unwrap();
    let tar = b.into_inner().unwrap();
    let blob = c.compress(&tar);
    BuiltLayer {
        digest: sha256(&blob),
        diff_id: sha256(&tar),
        media_type: c.media_type().into(),
        blob,
    }
}

/// An image config with full process defaults.
pub fn config_with(diff_ids: &[String], process: serde_json::Value) -> Vec<u8> {
    let mut config: serde_json::Value =
        serde_json::from_slice(&config_json(diff_ids, None, None)).unwrap();
    for (k, v) in process.as_object().unwrap() {
        config["config"][k] = v.clone();
    }
    serde_json::to_vec(&config).unwrap()
}
