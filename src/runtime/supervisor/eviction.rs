//! `emptyDir.sizeLimit` on a disk emptyDir, as kubelet's eviction manager
//! enforces it: every `INTERVAL` the folder's usage is measured (best
//! effort: files written between two looks may go past the limit), and a
//! volume over its limit evicts the pod with kubelet's message. The decision
//! is `over_limit` (pure); `usage` is the walk.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// Kubelet's housekeeping interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Kubelet's message when `used` bytes of emptyDir `volume` exceed its
/// `limit`, or None while within it (equal is within, as kubelet compares).
pub fn over_limit(volume: &str, used: u64, limit: u64) -> Option<String> {
    (used > limit).then(|| {
        format!(
            "Usage of EmptyDir volume {volume:?} exceeds the limit {:?}.",
            quantity(limit)
        )
    })
}

/// Bytes as a Kubernetes quantity in its canonical form: the largest
/// binary suffix that divides it (`1Mi`), else plain bytes.
pub fn quantity(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (i, suffix) in SUFFIXES.iter().enumerate() {
        let unit = 1u64 << (10 * (SUFFIXES.len() - i));
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// The bytes allocated under `dir`, as `du` counts them: blocks, not
/// lengths (a sparse file costs what it holds); symlinks are not followed
/// and other filesystems mounted inside are not entered. Files that vanish
/// during the walk are skipped.
pub fn usage(dir: &Path) -> std::io::Result<u64> {
    let top = std::fs::symlink_metadata(dir)?;
    let device = top.dev();
    let mut total = top.blocks() * 512;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != device {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_in_kubelets_words() {
        assert_eq!(over_limit("data", 1 << 20, 1 << 20), None);
        assert_eq!(
            over_limit("data", (1 << 20) + 1, 1 << 20).as_deref(),
            Some("Usage of EmptyDir volume \"data\" exceeds the limit \"1Mi\".")
        );
        assert_eq!(quantity(1536), "1536");
        assert_eq!(quantity(3 << 30), "3Gi");
        assert_eq!(quantity(1000), "1000");
    }

    #[test]
    fn usage_counts_allocated_blocks_and_not_symlink_targets() {
        let dir = tempfile::tempdir().unwrap();
        let empty = usage(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), vec![1u8; 256 * 1024]).unwrap();
        // A sparse file holds next to nothing.
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let used = usage(dir.path()).unwrap() - empty;
        assert!((256 * 1024..1 << 20).contains(&used), "{used}");
    }
}
