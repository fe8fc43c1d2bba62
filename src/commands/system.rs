//! `minipod system …`: commands about minipod as a whole. `df` shows the
//! disk space images, layers, pods, logs and volumes use, as podman's
//! `system df` does (TYPE, TOTAL, ACTIVE, SIZE, RECLAIMABLE). `reset`
//! removes everything of a data root and run root (pods stopped, images,
//! layers, volumes, Secrets, ConfigMaps), files of subordinate ids included,
//! which the user cannot remove from outside the user namespace, and stops
//! the holder: what a user runs instead of `rm -rf`.
//!
//! The walk (`measure`) finds what exists and how much disk it takes (blocks
//! allocated, as `du`, hard links counted once, never crossing into another
//! filesystem); `summarize` and the printers are pure.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::image::human_size;
use crate::image::Store;
use crate::paths::Roots;
use crate::runtime::state::{self, PodPaths};
use crate::userns;

/// The kinds of things `df` counts, in the order it prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Kind {
    Images,
    Layers,
    Pods,
    Logs,
    Volumes,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Images,
        Kind::Layers,
        Kind::Pods,
        Kind::Logs,
        Kind::Volumes,
    ];
    fn label(self) -> &'static str {
        match self {
            Kind::Images => "Images",
            Kind::Layers => "Layers",
            Kind::Pods => "Pods",
            Kind::Logs => "Logs",
            Kind::Volumes => "Volumes",
        }
    }
}

/// One thing on disk: an image, a layer, a pod, a log file, a volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    #[serde(rename = "Type")]
    pub kind: Kind,
    pub name: String,
    /// Bytes on disk. An image's is its own blobs plus its layers (shared
    /// ones counted in each image, as podman shows them).
    pub size: u64,
    /// Used by a running pod.
    pub active: bool,
    /// Removing it frees this much (an image's layers that an active image
    /// shares are not freed).
    pub reclaimable: u64,
    /// A layer no image names, or a temporary dir of a load that is still
    /// running or was killed (removed by the next load); a pod without
    /// state or supervisor (left by a killed `run`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unused: bool,
    /// An image's own blobs (config, manifest), without its layers.
    #[serde(skip)]
    pub own: u64,
}

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    #[serde(rename = "Type")]
    pub kind: Kind,
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

/// What the walk found about the image store, before any sum.
#[derive(Debug, Clone, Default)]
pub struct StoreUsage {
    /// Layer dir name (diff-id hex, or a temp name) → bytes.
    pub layers: BTreeMap<String, u64>,
    /// Each image: name, its layers' hex, the bytes of its own blobs
    /// (config, manifest), whether a running pod uses it.
    pub images: Vec<(String, Vec<String>, u64, bool)>,
}

/// Images and layers as items: an image's size is its blobs and layers;
/// what removing every unused image frees is the layers and blobs no
/// active image holds (split over the images that hold them only once).
pub fn store_items(usage: &StoreUsage) -> Vec<Item> {
    let active_layers: HashSet<&String> = usage
        .images
        .iter()
        .filter(|i| i.3)
        .flat_map(|i| &i.1)
        .collect();
    let named: HashSet<&String> = usage.images.iter().flat_map(|i| &i.1).collect();
    let mut counted: HashSet<&String> = HashSet::new();
    let mut items = Vec::new();
    for (name, layers, blobs, active) in &usage.images {
        let unique: BTreeSet<&String> = layers.iter().collect();
        let size = blobs
            + unique
                .iter()
                .map(|l| usage.layers.get(*l).copied().unwrap_or(0))
                .sum::<u64>();
        let reclaimable = if *active {
            0
        } else {
            blobs
                + unique
                    .iter()
                    .filter(|l| !active_layers.contains(*l) && counted.insert(l))
                    .map(|l| usage.layers.get(*l).copied().unwrap_or(0))
                    .sum::<u64>()
        };
        items.push(Item {
            kind: Kind::Images,
            name: name.clone(),
            size,
            active: *active,
            reclaimable,
            unused: false,
            own: *blobs,
        });
    }
    for (hex, size) in &usage.layers {
        let active = active_layers.contains(hex);
        items.push(Item {
            kind: Kind::Layers,
            name: hex.clone(),
            size: *size,
            active,
            reclaimable: if active { 0 } else { *size },
            unused: !named.contains(hex),
            own: 0,
        });
    }
    items
}

/// A thing that is reclaimable whole unless active (pods, logs, volumes).
pub fn plain_item(kind: Kind, name: String, size: u64, active: bool) -> Item {
    Item {
        kind,
        name,
        size,
        active,
        reclaimable: if active { 0 } else { size },
        unused: false,
        own: 0,
    }
}

/// The summary: one row per kind, every kind shown even when empty. Layers
/// are counted once however many images share them, so the Images row's
/// size is the store's, not the sum of the images'.
pub fn summarize(items: &[Item]) -> Vec<Row> {
    Kind::ALL
        .iter()
        .map(|&kind| {
            let of: Vec<&Item> = items.iter().filter(|i| i.kind == kind).collect();
            let size = if kind == Kind::Images {
                // Blobs per image plus each named layer once.
                store_size(items)
            } else {
                of.iter().map(|i| i.size).sum()
            };
            Row {
                kind,
                total: of.len(),
                active: of.iter().filter(|i| i.active).count(),
                size,
                reclaimable: of.iter().map(|i| i.reclaimable).sum(),
            }
        })
        .collect()
}

/// The images' bytes with shared layers once: every image's own blobs,
/// plus every layer some image names.
fn store_size(items: &[Item]) -> u64 {
    items
        .iter()
        .filter(|i| (i.kind == Kind::Layers && !i.unused) || i.kind == Kind::Images)
        .map(|i| {
            if i.kind == Kind::Images {
                i.own
            } else {
                i.size
            }
        })
        .sum()
}

/// podman's `NNN (PP%)`.
fn reclaimable_text(row: &Row) -> String {
    let percent = (row.reclaimable.min(row.size) * 100)
        .checked_div(row.size)
        .unwrap_or(0);
    format!("{} ({percent}%)", human_size(row.reclaimable))
}

pub fn summary_table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<10} {:>7} {:>7} {:>12} {:>18}\n",
        "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:>7} {:>7} {:>12} {:>18}\n",
            r.kind.label(),
            r.total,
            r.active,
            human_size(r.size),
            reclaimable_text(r)
        ));
    }
    out
}

/// `-v`: each kind's items after the summary.
pub fn verbose_table(items: &[Item]) -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        out.push_str(&format!("\n{} space usage:\n\n", kind.label()));
        out.push_str(&format!("{:<66} {:>12} {:>7}\n", "NAME", "SIZE", "ACTIVE"));
        for i in items.iter().filter(|i| i.kind == kind) {
            let name = if i.unused {
                format!("{} (unused)", i.name)
            } else {
                i.name.clone()
            };
            out.push_str(&format!(
                "{name:<66} {:>12} {:>7}\n",
                human_size(i.size),
                if i.active { "yes" } else { "no" }
            ));
        }
    }
    out
}

/// Blocks a tree takes on disk, as `du` counts them: every entry's
/// allocated blocks, hard links once, symlinks not followed, other
/// filesystems (a pod's mounts) not entered. What cannot be read counts as
/// nothing.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let dev = top.dev();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0;
    let mut stack = vec![(path.to_path_buf(), top)];
    while let Some((p, meta)) = stack.pop() {
        if meta.dev() != dev {
            continue;
        }
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata() {
                    stack.push((e.path(), m));
                }
            }
        }
    }
    total
}

/// Walks the roots: every image, layer dir, pod, log file and volume.
pub fn measure(roots: &Roots) -> Result<Vec<Item>> {
    let pods: BTreeSet<String> = state::list_pods(roots)
        .into_iter()
        .chain(dir_names(&roots.data_pods()))
        .collect();
    let mut running_images: HashSet<String> = HashSet::new();
    let mut mounted_volumes: HashSet<String> = HashSet::new();
    let mut items = Vec::new();
    for pod in &pods {
        let paths = PodPaths::new(roots, pod);
        let active = paths.supervisor_alive();
        if active && let Ok(st) = paths.read_state() {
            for c in st.init_containers.iter().chain(&st.containers) {
                running_images.insert(c.image_id.clone());
                running_images.insert(c.image.clone());
            }
            mounted_volumes.extend(st.volumes);
        }
        let logs = paths.data_dir.join("logs");
        let mut log_bytes = 0;
        for file in dir_names(&logs) {
            let size = disk_usage(&logs.join(&file));
            log_bytes += size;
            items.push(plain_item(
                Kind::Logs,
                format!("{pod}/{file}"),
                size,
                active,
            ));
        }
        let size = (disk_usage(&paths.dir) + disk_usage(&paths.data_dir)).saturating_sub(log_bytes);
        let mut item = plain_item(Kind::Pods, pod.clone(), size, active);
        // No state and no supervisor: left by a `run` killed while it made
        // the pod (`ps` cannot show it; the next `run` of it or `rm`
        // removes it), or a data-root half whose run root went (the next
        // `run` sweeps it).
        item.unused = !active && !paths.state().exists();
        items.push(item);
    }

    let store = Store::new(roots, true);
    let mut usage = StoreUsage::default();
    for name in dir_names(&roots.layers()) {
        let size = disk_usage(&roots.layers().join(&name));
        usage.layers.insert(name, size);
    }
    for (name, r) in store.list()? {
        let blobs = [&r.id, &r.manifest]
            .iter()
            .map(|d| disk_usage(&roots.blobs().join(d.trim_start_matches("sha256:"))))
            .sum();
        let layers = r
            .layers
            .iter()
            .map(|d| d.trim_start_matches("sha256:").to_string())
            .collect();
        let active = running_images.contains(&r.id)
            || running_images.contains(&name)
            || running_images.contains(r.id.trim_start_matches("sha256:"));
        usage.images.push((name, layers, blobs, active));
    }
    items.extend(store_items(&usage));

    for name in dir_names(&roots.data.join("volumes")) {
        let size = disk_usage(&crate::volume::dir(roots, &name));
        let active = mounted_volumes.contains(&name);
        items.push(plain_item(Kind::Volumes, name, size, active));
    }
    Ok(items)
}

/// The names in a directory, sorted; none when it cannot be read. Volumes
/// being made or removed (`.tmp-…`, `.removing-…`) are named too: they
/// take space.
fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub struct DfOptions {
    pub format: String,
    pub verbose: bool,
}

pub fn df(roots: &Roots, opts: DfOptions) -> Result<ExitCode> {
    if !matches!(opts.format.as_str(), "table" | "json") {
        bail!("--format {:?}: use table or json", opts.format);
    }
    // Layers, writable layers and volumes hold files of the user
    // namespace's ids, some in directories only they may enter: measure
    // from inside it when there is anything to measure.
    if ["layers", "pods", "volumes"]
        .iter()
        .any(|d| !dir_names(&roots.data.join(d)).is_empty())
    {
        userns::enter(roots)?;
    }
    let items = measure(roots)?;
    let rows = summarize(&items);
    match (opts.format.as_str(), opts.verbose) {
        ("json", false) => println!("{}", serde_json::to_string_pretty(&rows)?),
        ("json", true) => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "Summary": rows,
                "Items": items,
            }))?
        ),
        (_, verbose) => {
            print!("{}", summary_table(&rows));
            if verbose {
                print!("{}", verbose_table(&items));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `system reset` asks before it removes anything.
fn confirmed(roots: &Roots) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "system reset removes every pod, image, volume, Secret and ConfigMap under {} and {}; \
             pass --force to do it without being asked",
            roots.data.display(),
            roots.run.display()
        );
    }
    eprint!(
        "WARNING! This removes every pod, image, volume, Secret and ConfigMap of minipod under\n  \
         {}\n  {}\nand stops its user-namespace holder.\nAre you sure you want to continue? [y/N] ",
        roots.data.display(),
        roots.run.display()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `minipod system reset [-f]`: stops and removes every pod, then removes
/// the data root's and run root's contents (inside the user namespace: layers
/// and volumes hold files of subordinate ids) and stops the holder.
pub fn reset(roots: &Roots, force: bool) -> Result<ExitCode> {
    if !force && !confirmed(roots)? {
        eprintln!("nothing removed");
        return Ok(ExitCode::SUCCESS);
    }
    let pods = crate::runtime::state::list_pods(roots);
    // At once, as `rm -f`.
    super::pod::remove_pods(roots, &pods, Some(std::time::Duration::ZERO), |_| {})?;
    if roots.data.exists() {
        userns::enter(roots)?;
        empty_dir(&roots.data)?;
    }
    userns::holder::stop(roots)?;
    if roots.run.exists() {
        empty_dir(&roots.run)?;
    }
    for dir in [&roots.data, &roots.run] {
        // A mount point (a test's tmpfs) stays, empty.
        let _ = std::fs::remove_dir(dir);
    }
    println!(
        "removed {} pod(s) and everything under {} and {}",
        pods.len(),
        roots.data.display(),
        roots.run.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes what `dir` holds, not `dir` itself.
fn empty_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> StoreUsage {
        StoreUsage {
            layers: [
                ("base", 1000),
                ("app", 300),
                ("other", 50),
                (".tmp-9-0-x", 7),
            ]
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect(),
            images: vec![
                (
                    "running".into(),
                    vec!["base".into(), "app".into()],
                    10,
                    true,
                ),
                (
                    "idle".into(),
                    vec!["base".into(), "other".into()],
                    20,
                    false,
                ),
                ("idle2".into(), vec!["other".into()], 5, false),
            ],
        }
    }

    #[test]
    fn images_reclaim_only_what_no_active_image_shares_and_count_shared_layers_once() {
        let items = store_items(&usage());
        let image = |n: &str| {
            items
                .iter()
                .find(|i| i.kind == Kind::Images && i.name == n)
                .unwrap()
        };
        assert_eq!(image("running").size, 1310);
        assert_eq!(image("running").reclaimable, 0);
        // "base" is held by the running image: only "other" and its blobs.
        assert_eq!(image("idle").size, 1070);
        assert_eq!(image("idle").reclaimable, 70);
        // "other" was already counted with "idle".
        assert_eq!(image("idle2").reclaimable, 5);
        let rows = summarize(&items);
        let images = &rows[0];
        assert_eq!((images.total, images.active), (3, 1));
        assert_eq!(images.reclaimable, 75);
        assert_eq!(
            images.size, 1385,
            "blobs, then named layers once, the temp dir not"
        );
        let layers = &rows[1];
        assert_eq!(layers.kind, Kind::Layers);
        assert_eq!((layers.total, layers.active), (4, 2));
        assert_eq!((layers.size, layers.reclaimable), (1357, 57));
        let temp = items.iter().find(|i| i.name.starts_with(".tmp")).unwrap();
        assert!(temp.unused, "a half-made layer shows as unused");
    }

    #[test]
    fn every_kind_has_a_row_and_plain_items_reclaim_when_idle() {
        let items = vec![
            plain_item(Kind::Pods, "web".into(), 4096, true),
            plain_item(Kind::Pods, "job".into(), 8192, false),
            plain_item(Kind::Logs, "job/c.log".into(), 100, false),
            plain_item(Kind::Volumes, "data".into(), 0, false),
        ];
        let rows = summarize(&items);
        assert_eq!(
            rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
            Kind::ALL.to_vec()
        );
        assert_eq!(rows[0].total, 0);
        assert_eq!(
            (
                rows[2].total,
                rows[2].active,
                rows[2].size,
                rows[2].reclaimable
            ),
            (2, 1, 12288, 8192)
        );
        let table = summary_table(&rows);
        assert!(table.starts_with("TYPE"), "{table}");
        assert!(table.contains("8.192 kB (66%)"), "{table}");
        assert!(table.contains("0 B (0%)"), "empty kinds show 0: {table}");
        let verbose = verbose_table(&items);
        assert!(verbose.contains("Pods space usage:"), "{verbose}");
        assert!(verbose.contains("job/c.log"), "{verbose}");
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 << 10]).unwrap();
        let one = disk_usage(dir.path());
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_eq!(disk_usage(dir.path()), one);
        assert!(one >= 64 << 10, "{one}");
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
    }
}
