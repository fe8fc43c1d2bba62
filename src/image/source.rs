//! Where `minipod load` reads images from: an OCI image layout (a directory or
//! an `oci-archive` tar of one) or a `docker save` archive. Each source is
//! reduced to a `SourceImage`: the config, the layers in order, and a way to
//! open each file, so the store has one code path for all of them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

use super::digest::{parse_sha256, sha256_of};

/// The files of a source, by path relative to its top.
pub trait Files: Send + Sync {
    fn open(&self, path: &str) -> std::io::Result<Box<dyn Read + Send>>;
    fn exists(&self, path: &str) -> bool;
    /// How many layers to fetch and unpack at once, when the source knows
    /// better than "one per core" (a registry waits on the network).
    fn parallelism(&self) -> Option<usize> {
        None
    }
}

/// A plain directory (an `oci:` layout).
pub struct DirFiles(pub PathBuf);

impl Files for DirFiles {
    fn open(&self, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.0.join(path))?))
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).is_file()
    }
}

/// An uncompressed tar archive, indexed once so each member can be streamed
/// straight from its offset without extracting anything.
pub struct TarFiles {
    archive: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

impl TarFiles {
    pub fn index(archive: &Path) -> Result<TarFiles> {
        let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
        let mut magic = [0u8; 4];
        let n = (&file).read(&mut magic)?;
        if !matches!(
            super::unpack::Compression::sniff(&magic[..n]),
            super::unpack::Compression::None
        ) {
            bail!(
                "{} is compressed: decompress it first (for example with gunzip); minipod reads uncompressed image archives",
                archive.display()
            );
        }
        (&file).seek(SeekFrom::Start(0))?;
        let mut members = HashMap::new();
        let mut tar = tar::Archive::new(std::io::BufReader::new(file));
        let bad =
            |e: std::io::Error| anyhow!("{} is not a readable tar archive: {e}", archive.display());
        for entry in tar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(bad)?;
            let key = normalize_member(&path.to_string_lossy());
            members.insert(key, (entry.raw_file_position(), entry.size()));
        }
        let archive_len = std::fs::metadata(archive)?.len();
        if members.values().any(|(off, size)| off + size > archive_len) {
            bail!("{} is truncated", archive.display());
        }
        Ok(TarFiles {
            archive: archive.to_path_buf(),
            members,
        })
    }
}

fn normalize_member(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

impl Files for TarFiles {
    fn open(&self, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let &(offset, size) = self.members.get(&normalize_member(path)).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "not in the archive")
        })?;
        let mut file = File::open(&self.archive)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(file.take(size)))
    }
    fn exists(&self, path: &str) -> bool {
        self.members.contains_key(&normalize_member(path))
    }
}

/// One layer of a source image, in order.
#[derive(Debug, Clone)]
pub struct SourceLayer {
    /// Path of the blob within the source's files.
    pub path: String,
    /// `None` for docker's legacy `layer.tar` (compression is sniffed).
    pub media_type: Option<String>,
    /// The compressed blob's digest and size, when the source states them.
    pub digest: Option<String>,
    pub size: Option<u64>,
}

pub struct SourceImage {
    /// What the source calls the image (`RepoTags`, or the layout's ref name).
    pub name_hint: Option<String>,
    /// The manifest exactly as the source has it, when it has one.
    pub manifest: Option<Vec<u8>>,
    /// The image config, already verified against its digest.
    pub config: Vec<u8>,
    pub layers: Vec<SourceLayer>,
    pub files: Arc<dyn Files>,
    /// How to name this source in errors: `oci:/path`.
    pub origin: String,
}

/// Small JSON documents are read whole; this bounds what a bogus file costs.
const MAX_JSON: u64 = 16 << 20;

fn read_small(files: &dyn Files, path: &str, origin: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    files
        .open(path)
        .with_context(|| format!("{origin}: {path} is missing"))?
        .take(MAX_JSON + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("{origin}: reading {path}"))?;
    if buf.len() as u64 > MAX_JSON {
        bail!("{origin}: {path} is larger than {MAX_JSON} bytes");
    }
    Ok(buf)
}

fn blob_path(digest: &str) -> Option<String> {
    parse_sha256(digest).map(|hex| format!("blobs/sha256/{hex}"))
}

/// Reads a small blob named by a descriptor and checks size and digest.
fn read_blob(files: &dyn Files, desc: &Descriptor, origin: &str) -> Result<Vec<u8>> {
    let digest = desc.digest().to_string();
    let path = blob_path(&digest)
        .ok_or_else(|| anyhow!("{origin}: unsupported digest {digest} (only sha256)"))?;
    let bytes = read_small(files, &path, origin)
        .with_context(|| format!("blob {digest} is missing from {origin}"))?;
    let actual = sha256_of(&bytes);
    if actual != digest || bytes.len() as u64 != desc.size() {
        bail!(
            "{origin}: blob {digest} is corrupt: its content hashes to {actual} ({} bytes, {} expected); \
             the image is damaged, export it again",
            bytes.len(),
            desc.size()
        );
    }
    Ok(bytes)
}

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
pub fn open_oci_layout(
    files: Arc<dyn Files>,
    origin: String,
    tag: Option<&str>,
) -> Result<SourceImage> {
    if !files.exists("index.json") {
        bail!(
            "{origin}: index.json is missing: this is not an OCI image layout (see the OCI image-layout spec)"
        );
    }
    if files.exists("oci-layout") {
        #[derive(Deserialize)]
        struct Layout {
            #[serde(rename = "imageLayoutVersion")]
            version: String,
        }
        let layout: Layout = serde_json::from_slice(&read_small(&*files, "oci-layout", &origin)?)
            .with_context(|| format!("{origin}: oci-layout is not valid JSON"))?;
        if !layout.version.starts_with("1.") {
            bail!(
                "{origin}: unsupported image layout version {}",
                layout.version
            );
        }
    }
    let index: ImageIndex = serde_json::from_slice(&read_small(&*files, "index.json", &origin)?)
        .with_context(|| format!("{origin}: index.json is not a valid OCI image index"))?;
    let (desc, name_hint) = pick_manifest(&*files, &index, tag, &origin)?;
    let manifest_bytes = read_blob(&*files, &desc, &origin)?;
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).with_context(|| {
        format!(
            "{origin}: manifest {} is not a valid image manifest",
            desc.digest()
        )
    })?;
    let config = read_blob(&*files, manifest.config(), &origin)?;
    let layers = manifest
        .layers()
        .iter()
        .map(|l| {
            let digest = l.digest().to_string();
            let path = blob_path(&digest)
                .ok_or_else(|| anyhow!("{origin}: unsupported layer digest {digest}"))?;
            Ok(SourceLayer {
                path,
                media_type: Some(l.media_type().to_string()),
                digest: Some(digest),
                size: Some(l.size()),
            })
        })
        .collect::<Result<_>>()?;
    Ok(SourceImage {
        name_hint,
        manifest: Some(manifest_bytes),
        config,
        layers,
        files,
        origin,
    })
}

/// The manifest to load: the one tagged `tag`, else the only one, else the
/// one for this machine's platform; nested indexes are followed.
fn pick_manifest(
    files: &dyn Files,
    index: &ImageIndex,
    tag: Option<&str>,
    origin: &str,
) -> Result<(Descriptor, Option<String>)> {
    let ref_name = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
    };
    let mut candidates: Vec<&Descriptor> = index.manifests().iter().collect();
    if let Some(tag) = tag {
        candidates.retain(|d| ref_name(d).as_deref() == Some(tag));
        if candidates.is_empty() {
            let known: Vec<String> = index.manifests().iter().filter_map(ref_name).collect();
            bail!(
                "{origin}: no manifest is tagged {tag:?} (tags present: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    if candidates.len() > 1 {
        let host: Vec<&Descriptor> = candidates
            .iter()
            .copied()
            .filter(|d| for_this_machine(d))
            .collect();
        if !host.is_empty() {
            candidates = host;
        }
    }
    let desc = match candidates.as_slice() {
        [] => bail!("{origin}: index.json lists no manifest"),
        [one] => (*one).clone(),
        many => bail!(
            "{origin}: index.json lists {} manifests for this platform; name one as {origin}:TAG",
            many.len()
        ),
    };
    let name = ref_name(&desc);
    if matches!(desc.media_type(), MediaType::ImageIndex)
        || desc.media_type().to_string()
            == "application/vnd.docker.distribution.manifest.list.v2+json"
    {
        let nested: ImageIndex = serde_json::from_slice(&read_blob(files, &desc, origin)?)
            .with_context(|| format!("{origin}: nested index {} is not valid", desc.digest()))?;
        let (inner, inner_name) = pick_manifest(files, &nested, None, origin)?;
        return Ok((inner, name.or(inner_name)));
    }
    Ok((desc, name))
}

/// Whether an index entry is an image for this machine (linux, the host's
/// architecture).
pub fn for_this_machine(desc: &Descriptor) -> bool {
    desc.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
    })
}

/// The host's architecture in OCI's words.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `docker-archive:FILE`: what `docker save` and `podman save` write, both the
/// legacy layout (`<id>/layer.tar`) and the newer one (OCI blobs plus
/// `manifest.json`).
pub fn open_docker_archive(files: Arc<dyn Files>, origin: String) -> Result<SourceImage> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags", default)]
        repo_tags: Option<Vec<String>>,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    if !files.exists("manifest.json") {
        bail!("{origin}: manifest.json is missing: this is not a `docker save` archive");
    }
    let entries: Vec<Entry> =
        serde_json::from_slice(&read_small(&*files, "manifest.json", &origin)?)
            .with_context(|| format!("{origin}: manifest.json is not valid"))?;
    let entry = match entries.as_slice() {
        [one] => one,
        [] => bail!("{origin}: manifest.json lists no image"),
        many => bail!(
            "{origin}: holds {} images; minipod loads archives of one image",
            many.len()
        ),
    };
    let config = read_small(&*files, &entry.config, &origin)?;
    // The config's file name is its digest (`<hex>.json` or `blobs/sha256/<hex>`).
    let stem = Path::new(&entry.config)
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".json").to_string())
        .unwrap_or_default();
    let actual = sha256_of(&config);
    if parse_sha256(&format!("sha256:{stem}")).is_some() && actual != format!("sha256:{stem}") {
        bail!(
            "{origin}: config {} is corrupt: its content hashes to {actual}",
            entry.config
        );
    }
    let layers = entry
        .layers
        .iter()
        .map(|path| {
            // Newer archives store layers as `blobs/sha256/<hex>`: that names
            // the digest to check.
            let digest = path
                .strip_prefix("blobs/sha256/")
                .map(|hex| format!("sha256:{hex}"))
                .filter(|d| parse_sha256(d).is_some());
            SourceLayer {
                path: path.clone(),
                media_type: None,
                digest,
                size: None,
            }
        })
        .collect();
    Ok(SourceImage {
        name_hint: entry.repo_tags.as_ref().and_then(|t| t.first().cloned()),
        manifest: None,
        config,
        layers,
        files,
        origin,
    })
}

/// Parses a `load` source argument.
pub fn open(source: &str) -> Result<SourceImage> {
    let (transport, rest) = source.split_once(':').ok_or_else(|| {
        anyhow!("{source:?}: name the format: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE")
    })?;
    // A tag may follow the path after a ':' (paths with ':' are rare).
    let split_tag = |rest: &str| -> (PathBuf, Option<String>) {
        match rest.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') && !Path::new(rest).exists() => {
                (PathBuf::from(p), Some(t.to_string()))
            }
            _ => (PathBuf::from(rest), None),
        }
    };
    match transport {
        "oci" => {
            let (dir, tag) = split_tag(rest);
            if !dir.is_dir() {
                bail!("oci:{}: no such directory", dir.display());
            }
            open_oci_layout(
                Arc::new(DirFiles(dir.clone())),
                format!("oci:{}", dir.display()),
                tag.as_deref(),
            )
        }
        "oci-archive" => {
            let (file, tag) = split_tag(rest);
            let files = TarFiles::index(&file)?;
            open_oci_layout(
                Arc::new(files),
                format!("oci-archive:{}", file.display()),
                tag.as_deref(),
            )
        }
        "docker-archive" => {
            let file = PathBuf::from(rest);
            let files = TarFiles::index(&file)?;
            open_docker_archive(
                Arc::new(files),
                format!("docker-archive:{}", file.display()),
            )
        }
        other => bail!(
            "unknown source format {other:?}: use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE"
        ),
    }
}
