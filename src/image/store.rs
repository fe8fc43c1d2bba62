//! The image store (docs/ARCHITECTURE.md "Files"): `blobs/sha256/<hex>` for manifests
//! and configs, `layers/<diff-id hex>/diff` unpacked once and shared by every
//! image that has the layer, and `images.json` naming images.
//!
//! Crash safety: a layer is unpacked into `layers/.tmp-<pid>-…` and renamed
//! into place, so it is whole or absent; `images.json` and blobs are replaced
//! atomically. Temp dirs of dead processes are removed by the next load.
//!
//! Locks: `locks/images.lock` guards images.json; `locks/layer-<hex>.lock`
//! makes two loads of the same layer unpack it once; `locks/gc.lock` is held
//! shared by every load and exclusively by garbage collection, so nothing a
//! load is about to commit is collected under it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::digest::{HashingReader, parse_sha256, sha256_of};
use super::source::{SourceImage, SourceLayer};
use super::unpack::{self, Compression, UnpackError, UnpackOptions};
use crate::paths::Roots;
use crate::sys::fs::{atomic_write, pid_alive, temp_owner_pid, temp_sibling};
use crate::sys::lock::{FileLock, Mode};

/// One named image as images.json records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// The config's digest, which is the image ID (as podman shows it).
    pub id: String,
    pub manifest: String,
    /// diff-ids, bottom layer first.
    pub layers: Vec<String>,
    /// Unpacked size: the sum of the layers' tar streams.
    pub size: u64,
    pub created: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

/// What one pass over a layer blob measured: `(digest, size)` of the blob as
/// read and of the tar stream inside it.
struct Streamed {
    compressed: (String, u64),
    diff: (String, u64),
    devices_skipped: u64,
}

/// A layer being unpacked, under a temp name: removed on drop unless it was
/// committed, so a failed unpack leaves nothing visible.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn new(beside: &Path) -> TempDir {
        TempDir(Some(temp_sibling(beside)))
    }
    fn path(&self) -> &Path {
        self.0.as_deref().expect("not committed yet")
    }
    fn commit(mut self, dir: &Path, meta: &LayerMeta) -> Result<()> {
        let tmp = self.0.take().expect("committed once");
        let result = (|| -> std::io::Result<()> {
            std::fs::write(tmp.join("meta.json"), serde_json::to_vec(meta)?)?;
            std::fs::rename(&tmp, dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result.with_context(|| format!("storing layer in {}", dir.display()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// What a layer directory remembers of where it came from.
#[derive(Debug, Serialize, Deserialize)]
struct LayerMeta {
    size: u64,
    compressed_digest: Option<String>,
    /// Whether the files got the owners the layer gives them: not when it
    /// was unpacked with a single uid mapping (everything is root's then).
    /// Layers recorded before this field existed are taken as kept.
    #[serde(default = "kept")]
    owners_kept: bool,
}

fn kept() -> bool {
    true
}

pub struct Store {
    roots: Roots,
    /// False with a single uid mapping: only root can own files then.
    chown: bool,
}

impl Store {
    /// The roots this store lives under.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    pub fn new(roots: &Roots, chown: bool) -> Store {
        Store {
            roots: roots.clone(),
            chown,
        }
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.roots.data_locks().join(name)
    }

    /// Whether the layer with this diff-id is unpacked in the store.
    pub fn has_layer(&self, diff_id: &str) -> bool {
        parse_sha256(diff_id)
            .is_some_and(|hex| read_layer_meta(&self.roots.layers().join(hex)).is_some())
    }

    /// Whether any of these layers was unpacked with a single uid mapping
    /// (every file root's) while this store can now give files their owners
    /// (a subuid range was added since): such an image runs, but a
    /// non-root USER does not own its own files.
    pub fn owners_lost(&self, diff_ids: &[String]) -> bool {
        self.chown
            && diff_ids.iter().any(|d| {
                parse_sha256(d)
                    .and_then(|hex| read_layer_meta(&self.roots.layers().join(hex)))
                    .is_some_and(|m| !m.owners_kept)
            })
    }

    /// The unpacked tree of a layer, for overlayfs lowerdirs.
    pub fn layer_dir(&self, diff_id: &str) -> Option<PathBuf> {
        parse_sha256(diff_id).map(|hex| self.roots.layers().join(hex).join("diff"))
    }

    /// Loads `image` under `name` (already normalised): every layer is
    /// verified and unpacked (in parallel, once per diff-id) before the name
    /// is committed.
    pub fn add(&self, name: &str, image: &SourceImage) -> Result<ImageRecord> {
        let config: ImageConfiguration = serde_json::from_slice(&image.config)
            .with_context(|| format!("{}: the image config is not valid", image.origin))?;
        let diff_ids: Vec<String> = config.rootfs().diff_ids().to_vec();
        if diff_ids.len() != image.layers.len() {
            bail!(
                "{}: the config lists {} layers (rootfs.diff_ids) but the manifest has {}",
                image.origin,
                diff_ids.len(),
                image.layers.len()
            );
        }
        // Check everything that can be checked before writing anything.
        for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
            if parse_sha256(diff_id).is_none() {
                bail!(
                    "{}: diff-id {diff_id:?} is not a sha256 digest",
                    image.origin
                );
            }
            if let Some(mt) = &layer.media_type
                && Compression::from_media_type(mt).is_none()
            {
                bail!(
                    "image {name}: layer {} has media type {mt}, which minipod cannot unpack \
                     (it reads tar, tar+gzip and tar+zstd layers)",
                    layer.digest.as_deref().unwrap_or(&layer.path)
                );
            }
            if !self.has_layer(diff_id) && !image.files.exists(&layer.path) {
                bail!(
                    "image {name}: blob {} is missing from {}",
                    layer.digest.as_deref().unwrap_or(&layer.path),
                    image.origin
                );
            }
        }

        let _gc_guard = FileLock::acquire(&self.lock_path("gc.lock"), Mode::Shared)?;
        self.remove_stale_temps();
        let sizes = match self.ensure_layers(name, image, &diff_ids) {
            Ok(sizes) => sizes,
            Err(e) => {
                // Layers this load committed before another one failed
                // belong to no image: remove them now.
                drop(_gc_guard);
                self.collect_garbage_if_idle();
                return Err(e);
            }
        };

        let manifest = match &image.manifest {
            Some(bytes) => bytes.clone(),
            None => synthesize_manifest(
                &sha256_of(&image.config),
                image.config.len(),
                &diff_ids,
                &sizes,
            )?,
        };
        let record = self.commit(name, &image.config, &config, &manifest, diff_ids, &sizes)?;
        drop(_gc_guard);
        self.collect_garbage_if_idle();
        Ok(record)
    }

    /// Stores config and manifest blobs and names the image. The caller
    /// holds gc.lock shared, so the layers cannot vanish meanwhile.
    fn commit(
        &self,
        name: &str,
        config_bytes: &[u8],
        config: &ImageConfiguration,
        manifest: &[u8],
        diff_ids: Vec<String>,
        sizes: &[u64],
    ) -> Result<ImageRecord> {
        let config_digest = sha256_of(config_bytes);
        let manifest_digest = sha256_of(manifest);
        self.write_blob(&config_digest, config_bytes)?;
        self.write_blob(&manifest_digest, manifest)?;
        let record = ImageRecord {
            id: config_digest,
            manifest: manifest_digest,
            layers: diff_ids,
            size: sizes.iter().sum(),
            created: config.created().clone(),
        };
        self.update_index(|index| {
            index.images.insert(name.to_string(), record.clone());
            Ok(())
        })?;
        Ok(record)
    }

    /// Unpacks the layers that are not in the store yet, several at once.
    /// Returns each layer's uncompressed size, in order.
    fn ensure_layers(
        &self,
        name: &str,
        image: &SourceImage,
        diff_ids: &[String],
    ) -> Result<Vec<u64>> {
        // An image may list the same layer twice (empty layers): unpack once.
        let mut unique: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for (i, d) in diff_ids.iter().enumerate() {
            if seen.insert(d) {
                unique.push(i);
            }
        }
        let workers = image
            .files
            .parallelism()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(unique.len());
        let next = AtomicUsize::new(0);
        let devices = AtomicU64::new(0);
        let sizes: Vec<AtomicU64> = diff_ids.iter().map(|_| AtomicU64::new(0)).collect();
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = unique.get(k) else {
                                return Ok(());
                            };
                            let (size, skipped) =
                                self.ensure_layer(name, image, &image.layers[i], &diff_ids[i])?;
                            sizes[i].store(size, Ordering::Relaxed);
                            devices.fetch_add(skipped, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("internal error: a layer worker panicked")))
                })
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
        let skipped = devices.load(Ordering::Relaxed);
        if skipped > 0 {
            tracing::warn!(
                "image {name}: skipped {skipped} device node(s): an unprivileged user cannot create them"
            );
        }
        let by_id: BTreeMap<&String, u64> = unique
            .iter()
            .map(|&i| (&diff_ids[i], sizes[i].load(Ordering::Relaxed)))
            .collect();
        Ok(diff_ids.iter().map(|d| by_id[d]).collect())
    }

    /// Makes sure one layer is unpacked; returns its size and how many device
    /// nodes were skipped.
    fn ensure_layer(
        &self,
        name: &str,
        image: &SourceImage,
        layer: &SourceLayer,
        diff_id: &str,
    ) -> Result<(u64, u64)> {
        let hex = parse_sha256(diff_id).expect("checked in add");
        let dir = self.roots.layers().join(hex);
        if let Some(meta) = read_layer_meta(&dir) {
            return Ok((meta.size, 0));
        }
        let _lock = FileLock::acquire(
            &self.lock_path(&format!("layer-{hex}.lock")),
            Mode::Exclusive,
        )?;
        if let Some(meta) = read_layer_meta(&dir) {
            return Ok((meta.size, 0));
        }
        let blob = layer.digest.as_deref().unwrap_or(&layer.path);
        let raw = image.files.open(&layer.path).with_context(|| {
            format!("image {name}: blob {blob} is missing from {}", image.origin)
        })?;
        let compression = layer
            .media_type
            .as_deref()
            .map(|mt| Compression::from_media_type(mt).expect("checked in add"));
        let tmp = TempDir::new(&dir);
        let streamed = self.stream_layer(tmp.path(), raw, compression, name, blob)?;
        if let Some(want) = &layer.digest
            && (&streamed.compressed.0 != want
                || layer.size.is_some_and(|s| s != streamed.compressed.1))
        {
            bail!(
                "image {name}: blob {want} does not match its digest (content hashes to {}, {} bytes{}); \
                 the image is damaged, export or pull it again",
                streamed.compressed.0,
                streamed.compressed.1,
                layer
                    .size
                    .map(|s| format!(", {s} expected"))
                    .unwrap_or_default()
            );
        }
        if streamed.diff.0 != diff_id {
            bail!(
                "image {name}: layer {blob} uncompresses to {}, but the image config says {diff_id}; \
                 the image is damaged, export or pull it again",
                streamed.diff.0
            );
        }
        let meta = LayerMeta {
            size: streamed.diff.1,
            compressed_digest: layer.digest.clone(),
            owners_kept: self.chown,
        };
        tmp.commit(&dir, &meta)?;
        Ok((meta.size, streamed.devices_skipped))
    }

    /// One streaming pass over a layer blob: read → hash → decompress → hash
    /// → untar into `tmp/diff`. `compression` is sniffed when `None`.
    fn stream_layer(
        &self,
        tmp: &Path,
        raw: Box<dyn Read + Send>,
        compression: Option<Compression>,
        name: &str,
        blob: &str,
    ) -> Result<Streamed> {
        let diff = tmp.join("diff");
        std::fs::create_dir_all(&diff).with_context(|| format!("creating {}", diff.display()))?;
        let raw = HashingReader::new(raw);
        let compressed_tap = raw.tap();
        let mut raw = BufReader::with_capacity(1 << 20, raw);
        let compression = match compression {
            Some(c) => c,
            None => Compression::sniff(
                raw.fill_buf()
                    .with_context(|| format!("image {name}: reading layer {blob}"))?,
            ),
        };
        let tar = HashingReader::new(compression.decompressor(raw)?);
        let tar_tap = tar.tap();
        let report = unpack::unpack_layer(tar, &diff, &UnpackOptions { chown: self.chown }).map_err(|e| match e {
            UnpackError::Escape { entry, reason } => anyhow!(
                "image {name}: layer {blob}: entry {entry:?} {reason}: the layer is refused, \
                 it would change files outside its own directory"
            ),
            UnpackError::Corrupt { source } => anyhow!(
                "image {name}: layer {blob} is corrupt or truncated ({source}); the image is damaged, export or pull it again"
            ),
            other => anyhow!("image {name}: layer {blob}: {other}"),
        })?;
        Ok(Streamed {
            compressed: compressed_tap.result(),
            diff: tar_tap.result(),
            devices_skipped: report.devices_skipped,
        })
    }

    /// `minipod import`: a one-layer image from a rootfs tar stream (plain or
    /// compressed). The diff-id is known only once the stream is read, so the
    /// layer is unpacked first and renamed to its digest afterwards.
    pub fn import(
        &self,
        name: &str,
        tar_stream: Box<dyn Read + Send>,
        origin: &str,
    ) -> Result<ImageRecord> {
        let _gc_guard = FileLock::acquire(&self.lock_path("gc.lock"), Mode::Shared)?;
        self.remove_stale_temps();
        let tmp = TempDir::new(&self.roots.layers().join("import"));
        let streamed = self.stream_layer(tmp.path(), tar_stream, None, name, origin)?;
        if streamed.devices_skipped > 0 {
            tracing::warn!(
                "{origin}: skipped {} device node(s): an unprivileged user cannot create them",
                streamed.devices_skipped
            );
        }
        let (diff_id, size) = streamed.diff;
        let hex = parse_sha256(&diff_id).expect("computed digest").to_string();
        let dir = self.roots.layers().join(&hex);
        {
            let _lock = FileLock::acquire(
                &self.lock_path(&format!("layer-{hex}.lock")),
                Mode::Exclusive,
            )?;
            if read_layer_meta(&dir).is_none() {
                tmp.commit(
                    &dir,
                    &LayerMeta {
                        size,
                        compressed_digest: None,
                        owners_kept: self.chown,
                    },
                )?;
            }
        }
        let config_bytes = serde_json::to_vec(&serde_json::json!({
            "created": crate::sys::time::now_rfc3339(),
            "architecture": super::source::host_arch(),
            "os": "linux",
            "config": { "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": crate::sys::time::now_rfc3339(), "created_by": format!("minipod import {origin}") }],
        }))?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)?;
        let manifest = synthesize_manifest(
            &sha256_of(&config_bytes),
            config_bytes.len(),
            std::slice::from_ref(&diff_id),
            &[size],
        )?;
        let record = self.commit(
            name,
            &config_bytes,
            &config,
            &manifest,
            vec![diff_id],
            &[size],
        )?;
        drop(_gc_guard);
        self.collect_garbage_if_idle();
        Ok(record)
    }

    fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self
            .roots
            .blobs()
            .join(parse_sha256(digest).expect("computed digest"));
        if !path.exists() {
            atomic_write(&path, bytes)?;
        }
        Ok(())
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let hex =
            parse_sha256(digest).ok_or_else(|| anyhow!("{digest:?} is not a sha256 digest"))?;
        let path = self.roots.blobs().join(hex);
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading blob {}", path.display()))?;
        if sha256_of(&bytes) != digest {
            bail!(
                "blob {} is corrupt in the store; remove the image and load it again",
                path.display()
            );
        }
        Ok(bytes)
    }

    pub fn config(&self, record: &ImageRecord) -> Result<ImageConfiguration> {
        serde_json::from_slice(&self.read_blob(&record.id)?)
            .context("the stored image config is not valid")
    }

    fn read_index(&self) -> Result<Index> {
        match std::fs::read(self.roots.images_json()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid", self.roots.images_json().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => {
                Err(e).with_context(|| format!("reading {}", self.roots.images_json().display()))
            }
        }
    }

    fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _lock = FileLock::acquire(&self.lock_path("images.lock"), Mode::Exclusive)?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        atomic_write(
            &self.roots.images_json(),
            &serde_json::to_vec_pretty(&index)?,
        )?;
        Ok(out)
    }

    /// Every named image, by name.
    pub fn list(&self) -> Result<BTreeMap<String, ImageRecord>> {
        Ok(self.read_index()?.images)
    }

    /// Finds an image by name (normalised as podman does) or by ID prefix.
    pub fn lookup(&self, name_or_id: &str) -> Result<Option<(String, ImageRecord)>> {
        let images = self.list()?;
        if let Ok(name) = super::reference::normalize(name_or_id)
            && let Some(r) = images.get(&name)
        {
            return Ok(Some((name, r.clone())));
        }
        let prefix = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if prefix.len() >= 3 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let found: BTreeSet<&String> = images
                .values()
                .filter(|r| r.id.trim_start_matches("sha256:").starts_with(prefix))
                .map(|r| &r.id)
                .collect();
            if found.len() > 1 {
                bail!("image ID prefix {prefix} is ambiguous: give more digits");
            }
            if let Some(id) = found.into_iter().next() {
                return Ok(images
                    .iter()
                    .find(|(_, r)| &r.id == id)
                    .map(|(n, r)| (n.clone(), r.clone())));
            }
        }
        Ok(None)
    }

    /// Removes an image name (or, by ID, all names of the image) and then
    /// whatever no remaining image uses.
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<Vec<String>> {
        let _gc = FileLock::acquire(&self.lock_path("gc.lock"), Mode::Exclusive)?;
        let (name, record) = self.lookup(name_or_id)?.ok_or_else(|| {
            anyhow!("image {name_or_id} is not in the store; `minipod images` lists what is")
        })?;
        let by_id = super::reference::normalize(name_or_id).ok().as_deref() != Some(name.as_str());
        let removed = self.update_index(|index| {
            let names: Vec<String> = if by_id {
                index
                    .images
                    .iter()
                    .filter(|(_, r)| r.id == record.id)
                    .map(|(n, _)| n.clone())
                    .collect()
            } else {
                vec![name.clone()]
            };
            if by_id && names.len() > 1 && !force {
                bail!(
                    "image {name_or_id} has several names ({}): remove them one by one or use -f",
                    names.join(", ")
                );
            }
            for n in &names {
                index.images.remove(n);
            }
            Ok(names)
        })?;
        self.collect_garbage()?;
        Ok(removed)
    }

    fn collect_garbage_if_idle(&self) {
        if let Ok(Some(_gc)) = FileLock::try_acquire(&self.lock_path("gc.lock"), Mode::Exclusive)
            && let Err(e) = self.collect_garbage()
        {
            tracing::warn!("cleaning unused image data: {e:#}");
        }
    }

    /// Deletes blobs and layers no named image refers to. The caller holds
    /// gc.lock exclusively.
    fn collect_garbage(&self) -> Result<()> {
        let index = self.read_index()?;
        let mut keep: HashSet<String> = HashSet::new();
        for r in index.images.values() {
            for d in [&r.id, &r.manifest].into_iter().chain(&r.layers) {
                keep.insert(d.trim_start_matches("sha256:").to_string());
            }
        }
        for dir in [self.roots.blobs(), self.roots.layers()] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let stale_temp = temp_owner_pid(&name).is_some_and(|p| !pid_alive(p));
                if stale_temp
                    || (parse_sha256(&format!("sha256:{name}")).is_some() && !keep.contains(&name))
                {
                    remove_path(&entry.path())?;
                    let _ = std::fs::remove_file(self.lock_path(&format!("layer-{name}.lock")));
                }
            }
        }
        Ok(())
    }

    /// Temp dirs left by a load that was killed.
    fn remove_stale_temps(&self) {
        let Ok(entries) = std::fs::read_dir(self.roots.layers()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if temp_owner_pid(&name.to_string_lossy()).is_some_and(|p| !pid_alive(p)) {
                let _ = remove_path(&entry.path());
            }
        }
    }
}

fn read_layer_meta(dir: &Path) -> Option<LayerMeta> {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()
}

fn remove_path(path: &Path) -> Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// An OCI manifest for a source that has none (docker archives, imports):
/// it describes the layers as the store holds them, uncompressed.
fn synthesize_manifest(
    config_digest: &str,
    config_size: usize,
    diff_ids: &[String],
    sizes: &[u64],
) -> Result<Vec<u8>> {
    let layers: Vec<serde_json::Value> = diff_ids
        .iter()
        .zip(sizes)
        .map(|(diff_id, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": diff_id,
                "size": size,
            })
        })
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    }))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_file_tar() -> Box<dyn Read + Send> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "home/app/file", &b"hi\n"[..])
            .unwrap();
        Box::new(std::io::Cursor::new(builder.into_inner().unwrap()))
    }

    #[test]
    fn a_layer_unpacked_with_a_single_mapping_is_known_to_have_lost_its_owners() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots::under(dir.path());
        let single = Store::new(&roots, false);
        let record = single
            .import("localhost/owners:1", one_file_tar(), "test")
            .unwrap();
        assert!(
            !single.owners_lost(&record.layers),
            "nothing better was possible"
        );
        assert!(Store::new(&roots, true).owners_lost(&record.layers));
    }
}
